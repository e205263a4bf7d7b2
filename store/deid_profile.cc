// Table E.1-1 of DICOM PS3.15 (Application Level Confidentiality Profile Attributes), typed in as
// data: every row whose attribute DCMTK's data dictionary knows, with the Basic Profile action and
// the actions of the options medvfs supports (the Institution Identity, Safe Private, Clean
// Structured Content and Clean Graphics columns are not, so they are left out). Patterned rows
// (curves 50xx, overlay data and comments 60xx, private attributes) are handled in deid.cc.
#include "store/deid_profile.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

namespace medvfs::store::deid_profile {
namespace {

// Short names keep one row per line, so the table reads like the standard's.
constexpr Action kD = Action::kD;
constexpr Action kZ = Action::kZ;
constexpr Action kX = Action::kX;
constexpr Action kK = Action::kK;
constexpr Action kC = Action::kC;
constexpr Action kU = Action::kU;
constexpr Action kZD = Action::kZD;
constexpr Action kXZ = Action::kXZ;
constexpr Action kXD = Action::kXD;
constexpr Action kXZD = Action::kXZD;
constexpr Action kXZU = Action::kXZU;

// clang-format off
constexpr ProfileRow kRows[] = {
    {0x00001000, "AffectedSOPInstanceUID", kX, {.uids = kK}},
    {0x00001001, "RequestedSOPInstanceUID", kU, {.uids = kK}},
    {0x00020003, "MediaStorageSOPInstanceUID", kU, {.uids = kK}},
    {0x00041511, "ReferencedSOPInstanceUIDInFile", kU, {.uids = kK}},
    {0x00080014, "InstanceCreatorUID", kU, {.uids = kK}},
    {0x00080015, "InstanceCoercionDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00080018, "SOPInstanceUID", kU, {.uids = kK}},
    {0x00080020, "StudyDate", kZ, {.full_dates = kK, .modified_dates = kC}},
    {0x00080021, "SeriesDate", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x00080022, "AcquisitionDate", kXZ, {.full_dates = kK, .modified_dates = kC}},
    {0x00080023, "ContentDate", kZD, {.full_dates = kK, .modified_dates = kC}},
    {0x00080024, "OverlayDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00080025, "CurveDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x0008002A, "AcquisitionDateTime", kXZD, {.full_dates = kK, .modified_dates = kC}},
    {0x00080030, "StudyTime", kZ, {.full_dates = kK, .modified_dates = kC}},
    {0x00080031, "SeriesTime", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x00080032, "AcquisitionTime", kXZ, {.full_dates = kK, .modified_dates = kC}},
    {0x00080033, "ContentTime", kZD, {.full_dates = kK, .modified_dates = kC}},
    {0x00080034, "OverlayTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00080035, "CurveTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00080050, "AccessionNumber", kZ, {}},
    {0x00080058, "FailedSOPInstanceUIDList", kU, {.uids = kK}},
    {0x00080080, "InstitutionName", kXZD, {}},
    {0x00080081, "InstitutionAddress", kX, {}},
    {0x00080082, "InstitutionCodeSequence", kXZD, {}},
    {0x00080090, "ReferringPhysicianName", kZ, {}},
    {0x00080092, "ReferringPhysicianAddress", kX, {}},
    {0x00080094, "ReferringPhysicianTelephoneNumbers", kX, {}},
    {0x00080096, "ReferringPhysicianIdentificationSequence", kX, {}},
    {0x0008009C, "ConsultingPhysicianName", kZ, {}},
    {0x0008009D, "ConsultingPhysicianIdentificationSequence", kX, {}},
    {0x00080201, "TimezoneOffsetFromUTC", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00081010, "StationName", kXZD, {.device = kK}},
    {0x00081030, "StudyDescription", kX, {.descriptors = kC}},
    {0x0008103E, "SeriesDescription", kX, {.descriptors = kC}},
    {0x00081040, "InstitutionalDepartmentName", kX, {}},
    {0x00081041, "InstitutionalDepartmentTypeCodeSequence", kX, {}},
    {0x00081048, "PhysiciansOfRecord", kX, {}},
    {0x00081049, "PhysiciansOfRecordIdentificationSequence", kX, {}},
    {0x00081050, "PerformingPhysicianName", kX, {}},
    {0x00081052, "PerformingPhysicianIdentificationSequence", kX, {}},
    {0x00081060, "NameOfPhysiciansReadingStudy", kX, {}},
    {0x00081062, "PhysiciansReadingStudyIdentificationSequence", kX, {}},
    {0x00081070, "OperatorsName", kXZD, {}},
    {0x00081072, "OperatorIdentificationSequence", kXD, {}},
    {0x00081080, "AdmittingDiagnosesDescription", kX, {.descriptors = kC}},
    {0x00081084, "AdmittingDiagnosesCodeSequence", kX, {.descriptors = kC}},
    {0x00081110, "ReferencedStudySequence", kXZ, {.uids = kK}},
    {0x00081111, "ReferencedPerformedProcedureStepSequence", kXZD, {.uids = kK}},
    {0x00081120, "ReferencedPatientSequence", kX, {}},
    {0x00081140, "ReferencedImageSequence", kXZU, {.uids = kK}},
    {0x00081155, "ReferencedSOPInstanceUID", kU, {.uids = kK}},
    {0x00081195, "TransactionUID", kU, {.uids = kK}},
    {0x00082111, "DerivationDescription", kX, {.descriptors = kC}},
    {0x00082112, "SourceImageSequence", kXZU, {.uids = kK}},
    {0x00083010, "IrradiationEventUID", kU, {.uids = kK}},
    {0x00084000, "IdentifyingComments", kX, {.descriptors = kC}},
    {0x00100010, "PatientName", kZ, {}},
    {0x00100020, "PatientID", kZ, {}},
    {0x00100021, "IssuerOfPatientID", kX, {}},
    {0x00100030, "PatientBirthDate", kZ, {}},
    {0x00100032, "PatientBirthTime", kX, {}},
    {0x00100040, "PatientSex", kZ, {.patient = kK}},
    {0x00100050, "PatientInsurancePlanCodeSequence", kX, {}},
    {0x00100101, "PatientPrimaryLanguageCodeSequence", kX, {}},
    {0x00100102, "PatientPrimaryLanguageModifierCodeSequence", kX, {}},
    {0x00101000, "OtherPatientIDs", kX, {}},
    {0x00101001, "OtherPatientNames", kX, {}},
    {0x00101002, "OtherPatientIDsSequence", kX, {}},
    {0x00101005, "PatientBirthName", kX, {}},
    {0x00101010, "PatientAge", kX, {.patient = kK}},
    {0x00101020, "PatientSize", kX, {.patient = kK}},
    {0x00101030, "PatientWeight", kX, {.patient = kK}},
    {0x00101040, "PatientAddress", kX, {}},
    {0x00101050, "InsurancePlanIdentification", kX, {}},
    {0x00101060, "PatientMotherBirthName", kX, {}},
    {0x00101080, "MilitaryRank", kX, {}},
    {0x00101081, "BranchOfService", kX, {}},
    {0x00101090, "MedicalRecordLocator", kX, {}},
    {0x00101100, "ReferencedPatientPhotoSequence", kX, {}},
    {0x00102000, "MedicalAlerts", kX, {.descriptors = kC}},
    {0x00102110, "Allergies", kX, {.patient = kC, .descriptors = kC}},
    {0x00102150, "CountryOfResidence", kX, {}},
    {0x00102152, "RegionOfResidence", kX, {}},
    {0x00102154, "PatientTelephoneNumbers", kX, {}},
    {0x00102155, "PatientTelecomInformation", kX, {}},
    {0x00102160, "EthnicGroup", kX, {.patient = kK}},
    {0x00102180, "Occupation", kX, {.descriptors = kC}},
    {0x001021A0, "SmokingStatus", kX, {.patient = kK}},
    {0x001021B0, "AdditionalPatientHistory", kX, {.descriptors = kC}},
    {0x001021C0, "PregnancyStatus", kX, {.patient = kK}},
    {0x001021D0, "LastMenstrualDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x001021F0, "PatientReligiousPreference", kX, {}},
    {0x00102203, "PatientSexNeutered", kXZ, {.patient = kK}},
    {0x00102297, "ResponsiblePerson", kX, {}},
    {0x00102299, "ResponsibleOrganization", kX, {}},
    {0x00104000, "PatientComments", kX, {.descriptors = kC}},
    {0x00120010, "ClinicalTrialSponsorName", kD, {}},
    {0x00120020, "ClinicalTrialProtocolID", kD, {}},
    {0x00120021, "ClinicalTrialProtocolName", kZ, {}},
    {0x00120030, "ClinicalTrialSiteID", kZ, {}},
    {0x00120031, "ClinicalTrialSiteName", kZ, {}},
    {0x00120040, "ClinicalTrialSubjectID", kD, {}},
    {0x00120042, "ClinicalTrialSubjectReadingID", kD, {}},
    {0x00120050, "ClinicalTrialTimePointID", kZ, {}},
    {0x00120051, "ClinicalTrialTimePointDescription", kX, {.descriptors = kC}},
    {0x00120060, "ClinicalTrialCoordinatingCenterName", kZ, {}},
    {0x00120071, "ClinicalTrialSeriesID", kX, {}},
    {0x00120072, "ClinicalTrialSeriesDescription", kX, {.descriptors = kC}},
    {0x00120081, "ClinicalTrialProtocolEthicsCommitteeName", kD, {}},
    {0x00120082, "ClinicalTrialProtocolEthicsCommitteeApprovalNumber", kX, {}},
    {0x0016002B, "MakerNote", kX, {.descriptors = kC}},
    {0x0016004B, "DeviceSettingDescription", kX, {.descriptors = kC}},
    {0x0016004D, "CameraOwnerName", kX, {}},
    {0x0016004E, "LensSpecification", kX, {.device = kK}},
    {0x0016004F, "LensMake", kX, {.device = kK}},
    {0x00160050, "LensModel", kX, {.device = kK}},
    {0x00160051, "LensSerialNumber", kX, {.device = kK}},
    {0x00160070, "GPSVersionID", kX, {}},
    {0x00160071, "GPSLatitudeRef", kX, {}},
    {0x00160072, "GPSLatitude", kX, {}},
    {0x00160073, "GPSLongitudeRef", kX, {}},
    {0x00160074, "GPSLongitude", kX, {}},
    {0x00160075, "GPSAltitudeRef", kX, {}},
    {0x00160076, "GPSAltitude", kX, {}},
    {0x00160077, "GPSTimeStamp", kX, {}},
    {0x00160078, "GPSSatellites", kX, {}},
    {0x00160079, "GPSStatus", kX, {}},
    {0x0016007A, "GPSMeasureMode", kX, {}},
    {0x0016007B, "GPSDOP", kX, {}},
    {0x0016007C, "GPSSpeedRef", kX, {}},
    {0x0016007D, "GPSSpeed", kX, {}},
    {0x0016007E, "GPSTrackRef", kX, {}},
    {0x0016007F, "GPSTrack", kX, {}},
    {0x00160080, "GPSImgDirectionRef", kX, {}},
    {0x00160081, "GPSImgDirection", kX, {}},
    {0x00160082, "GPSMapDatum", kX, {}},
    {0x00160083, "GPSDestLatitudeRef", kX, {}},
    {0x00160084, "GPSDestLatitude", kX, {}},
    {0x00160085, "GPSDestLongitudeRef", kX, {}},
    {0x00160086, "GPSDestLongitude", kX, {}},
    {0x00160087, "GPSDestBearingRef", kX, {}},
    {0x00160088, "GPSDestBearing", kX, {}},
    {0x00160089, "GPSDestDistanceRef", kX, {}},
    {0x0016008A, "GPSDestDistance", kX, {}},
    {0x0016008B, "GPSProcessingMethod", kX, {}},
    {0x0016008C, "GPSAreaInformation", kX, {}},
    {0x0016008D, "GPSDateStamp", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x0016008E, "GPSDifferential", kX, {}},
    {0x00180010, "ContrastBolusAgent", kZD, {.descriptors = kC}},
    {0x00181000, "DeviceSerialNumber", kXZD, {.device = kK}},
    {0x00181002, "DeviceUID", kU, {.uids = kK, .device = kK}},
    {0x00181004, "PlateID", kX, {.device = kK}},
    {0x00181005, "GeneratorID", kX, {.device = kK}},
    {0x00181007, "CassetteID", kX, {.device = kK}},
    {0x00181008, "GantryID", kX, {.device = kK}},
    {0x00181009, "UniqueDeviceIdentifier", kX, {.device = kK}},
    {0x0018100A, "UDISequence", kX, {.device = kK}},
    {0x0018100B, "ManufacturerDeviceClassUID", kU, {.uids = kK, .device = kK}},
    {0x00181030, "ProtocolName", kXD, {.descriptors = kC}},
    {0x001811BB, "AcquisitionFieldOfViewLabel", kD, {.descriptors = kC}},
    {0x00181400, "AcquisitionDeviceProcessingDescription", kXD, {.descriptors = kC}},
    {0x00182042, "TargetUID", kU, {.uids = kK}},
    {0x00184000, "AcquisitionComments", kX, {.descriptors = kC}},
    {0x00185011, "TransducerIdentificationSequence", kX, {.device = kK}},
    {0x0018700A, "DetectorID", kXD, {.device = kK}},
    {0x00189185, "RespiratoryMotionCompensationTechniqueDescription", kX, {.descriptors = kC}},
    {0x00189367, "XRaySourceID", kD, {.device = kK}},
    {0x00189369, "SourceStartDateTime", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x0018936A, "SourceEndDateTime", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x00189371, "XRayDetectorID", kD, {.device = kK}},
    {0x00189373, "XRayDetectorLabel", kX, {.device = kK}},
    {0x0018937B, "MultienergyAcquisitionDescription", kX, {.descriptors = kC}},
    {0x0018937F, "DecompositionDescription", kX, {.descriptors = kC}},
    {0x00189424, "AcquisitionProtocolDescription", kX, {.descriptors = kC}},
    {0x00189516, "StartAcquisitionDateTime", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x00189517, "EndAcquisitionDateTime", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x00189937, "RequestedSeriesDescription", kX, {.descriptors = kC}},
    {0x0018A003, "ContributionDescription", kX, {.descriptors = kC}},
    {0x0020000D, "StudyInstanceUID", kU, {.uids = kK}},
    {0x0020000E, "SeriesInstanceUID", kU, {.uids = kK}},
    {0x00200010, "StudyID", kZ, {}},
    {0x00200052, "FrameOfReferenceUID", kU, {.uids = kK}},
    {0x00200200, "SynchronizationFrameOfReferenceUID", kU, {.uids = kK}},
    {0x00203401, "ModifyingDeviceID", kX, {}},
    {0x00203406, "ModifiedImageDescription", kX, {}},
    {0x00204000, "ImageComments", kX, {.descriptors = kC}},
    {0x00209158, "FrameComments", kX, {.descriptors = kC}},
    {0x00209161, "ConcatenationUID", kU, {.uids = kK}},
    {0x00209164, "DimensionOrganizationUID", kU, {.uids = kK}},
    {0x00281199, "PaletteColorLookupTableUID", kU, {.uids = kK}},
    {0x00281214, "LargePaletteColorLookupTableUID", kU, {.uids = kK}},
    {0x00284000, "ImagePresentationComments", kX, {}},
    {0x00320012, "StudyIDIssuer", kX, {}},
    {0x00321020, "ScheduledStudyLocation", kX, {.device = kK}},
    {0x00321021, "ScheduledStudyLocationAETitle", kX, {.device = kK}},
    {0x00321030, "ReasonForStudy", kX, {.descriptors = kC}},
    {0x00321032, "RequestingPhysician", kX, {}},
    {0x00321033, "RequestingService", kX, {}},
    {0x00321060, "RequestedProcedureDescription", kXZ, {.descriptors = kC}},
    {0x00321066, "ReasonForVisit", kX, {.descriptors = kC}},
    {0x00321067, "ReasonForVisitCodeSequence", kX, {.descriptors = kC}},
    {0x00321070, "RequestedContrastAgent", kX, {.descriptors = kC}},
    {0x00324000, "StudyComments", kX, {.descriptors = kC}},
    {0x00340001, "FlowIdentifierSequence", kD, {}},
    {0x00340002, "FlowIdentifier", kD, {}},
    {0x00340005, "SourceIdentifier", kD, {}},
    {0x00340007, "FrameOriginTimestamp", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x00380004, "ReferencedPatientAliasSequence", kX, {}},
    {0x00380010, "AdmissionID", kX, {}},
    {0x00380011, "IssuerOfAdmissionID", kX, {}},
    {0x00380014, "IssuerOfAdmissionIDSequence", kX, {}},
    {0x0038001E, "ScheduledPatientInstitutionResidence", kX, {}},
    {0x00380020, "AdmittingDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00380021, "AdmittingTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00380040, "DischargeDiagnosisDescription", kX, {.descriptors = kC}},
    {0x00380050, "SpecialNeeds", kX, {.patient = kC}},
    {0x00380060, "ServiceEpisodeID", kX, {}},
    {0x00380061, "IssuerOfServiceEpisodeID", kX, {}},
    {0x00380062, "ServiceEpisodeDescription", kX, {.descriptors = kC}},
    {0x00380064, "IssuerOfServiceEpisodeIDSequence", kX, {}},
    {0x00380300, "CurrentPatientLocation", kX, {}},
    {0x00380400, "PatientInstitutionResidence", kX, {}},
    {0x00380500, "PatientState", kX, {.patient = kC, .descriptors = kC}},
    {0x00384000, "VisitComments", kX, {.descriptors = kC}},
    {0x003A0310, "MultiplexGroupUID", kU, {.uids = kK}},
    {0x003A0314, "ImpedanceMeasurementDateTime", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x00400001, "ScheduledStationAETitle", kX, {.device = kK}},
    {0x00400002, "ScheduledProcedureStepStartDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400003, "ScheduledProcedureStepStartTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400004, "ScheduledProcedureStepEndDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400005, "ScheduledProcedureStepEndTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400006, "ScheduledPerformingPhysicianName", kX, {}},
    {0x00400007, "ScheduledProcedureStepDescription", kX, {.descriptors = kC}},
    {0x00400009, "ScheduledProcedureStepID", kX, {}},
    {0x0040000B, "ScheduledPerformingPhysicianIdentificationSequence", kX, {}},
    {0x00400010, "ScheduledStationName", kX, {.device = kK}},
    {0x00400011, "ScheduledProcedureStepLocation", kX, {.device = kK}},
    {0x00400012, "PreMedication", kX, {.patient = kC}},
    {0x00400241, "PerformedStationAETitle", kX, {.device = kK}},
    {0x00400242, "PerformedStationName", kX, {.device = kK}},
    {0x00400243, "PerformedLocation", kX, {}},
    {0x00400244, "PerformedProcedureStepStartDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400245, "PerformedProcedureStepStartTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400250, "PerformedProcedureStepEndDate", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400251, "PerformedProcedureStepEndTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00400253, "PerformedProcedureStepID", kX, {}},
    {0x00400254, "PerformedProcedureStepDescription", kX, {.descriptors = kC}},
    {0x00400275, "RequestAttributesSequence", kX, {.descriptors = kC}},
    {0x00400280, "CommentsOnThePerformedProcedureStep", kX, {.descriptors = kC}},
    {0x00400310, "CommentsOnRadiationDose", kX, {.descriptors = kC}},
    {0x0040050A, "SpecimenAccessionNumber", kX, {}},
    {0x00400512, "ContainerIdentifier", kD, {}},
    {0x00400513, "IssuerOfTheContainerIdentifierSequence", kZ, {}},
    {0x0040051A, "ContainerDescription", kX, {.descriptors = kC}},
    {0x00400551, "SpecimenIdentifier", kD, {}},
    {0x00400554, "SpecimenUID", kU, {.uids = kK}},
    {0x00400555, "AcquisitionContextSequence", kXZ, {}},
    {0x00400562, "IssuerOfTheSpecimenIdentifierSequence", kZ, {}},
    {0x00400600, "SpecimenShortDescription", kX, {.descriptors = kC}},
    {0x00400602, "SpecimenDetailedDescription", kX, {.descriptors = kC}},
    {0x00400610, "SpecimenPreparationSequence", kZ, {}},
    {0x004006FA, "SlideIdentifier", kX, {}},
    {0x00401001, "RequestedProcedureID", kX, {}},
    {0x00401002, "ReasonForTheRequestedProcedure", kX, {.descriptors = kC}},
    {0x00401004, "PatientTransportArrangements", kX, {}},
    {0x00401005, "RequestedProcedureLocation", kX, {}},
    {0x0040100A, "ReasonForRequestedProcedureCodeSequence", kX, {.descriptors = kC}},
    {0x00401010, "NamesOfIntendedRecipientsOfResults", kX, {}},
    {0x00401011, "IntendedRecipientsOfResultsIdentificationSequence", kX, {}},
    {0x00401101, "PersonIdentificationCodeSequence", kD, {}},
    {0x00401102, "PersonAddress", kX, {}},
    {0x00401103, "PersonTelephoneNumbers", kX, {}},
    {0x00401104, "PersonTelecomInformation", kX, {}},
    {0x00401400, "RequestedProcedureComments", kX, {.descriptors = kC}},
    {0x00402001, "ReasonForTheImagingServiceRequest", kX, {.descriptors = kC}},
    {0x00402008, "OrderEnteredBy", kX, {}},
    {0x00402009, "OrderEntererLocation", kX, {}},
    {0x00402010, "OrderCallbackPhoneNumber", kX, {}},
    {0x00402011, "OrderCallbackTelecomInformation", kX, {}},
    {0x00402016, "PlacerOrderNumberImagingServiceRequest", kZ, {}},
    {0x00402017, "FillerOrderNumberImagingServiceRequest", kZ, {}},
    {0x00402400, "ImagingServiceRequestComments", kX, {.descriptors = kC}},
    {0x00403001, "ConfidentialityConstraintOnPatientDataDescription", kX, {}},
    {0x00404005, "ScheduledProcedureStepStartDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00404008, "ScheduledProcedureStepExpirationDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00404010, "ScheduledProcedureStepModificationDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00404011, "ExpectedCompletionDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00404023, "ReferencedGeneralPurposeScheduledProcedureStepTransactionUID", kU, {.uids = kK}},
    {0x00404025, "ScheduledStationNameCodeSequence", kX, {.device = kK}},
    {0x00404027, "ScheduledStationGeographicLocationCodeSequence", kX, {.device = kK}},
    {0x00404028, "PerformedStationNameCodeSequence", kX, {.device = kK}},
    {0x00404030, "PerformedStationGeographicLocationCodeSequence", kX, {.device = kK}},
    {0x00404034, "ScheduledHumanPerformersSequence", kX, {}},
    {0x00404035, "ActualHumanPerformersSequence", kX, {}},
    {0x00404036, "HumanPerformerOrganization", kX, {}},
    {0x00404037, "HumanPerformerName", kX, {}},
    {0x00404050, "PerformedProcedureStepStartDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00404051, "PerformedProcedureStepEndDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x00404052, "ProcedureStepCancellationDateTime", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x0040A027, "VerifyingOrganization", kD, {}},
    {0x0040A073, "VerifyingObserverSequence", kD, {}},
    {0x0040A075, "VerifyingObserverName", kD, {}},
    {0x0040A078, "AuthorObserverSequence", kX, {}},
    {0x0040A07A, "ParticipantSequence", kX, {}},
    {0x0040A07C, "CustodialOrganizationSequence", kX, {}},
    {0x0040A088, "VerifyingObserverIdentificationCodeSequence", kZ, {}},
    {0x0040A123, "PersonName", kD, {}},
    {0x0040A124, "UID", kU, {}},
    {0x0040A171, "ObservationUID", kU, {.uids = kK}},
    {0x0040A172, "ReferencedObservationUIDTrial", kU, {.uids = kK}},
    {0x0040A192, "ObservationDateTrial", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x0040A193, "ObservationTimeTrial", kX, {.full_dates = kK, .modified_dates = kC}},
    {0x0040A307, "CurrentObserverTrial", kX, {}},
    {0x0040A352, "VerbalSourceTrial", kX, {}},
    {0x0040A353, "AddressTrial", kX, {}},
    {0x0040A354, "TelephoneNumberTrial", kX, {}},
    {0x0040A358, "VerbalSourceIdentifierCodeSequenceTrial", kX, {}},
    {0x0040A402, "ObservationSubjectUIDTrial", kU, {.uids = kK}},
    {0x0040A730, "ContentSequence", kD, {}},
    {0x0040DB0C, "TemplateExtensionOrganizationUID", kU, {.uids = kK}},
    {0x0040DB0D, "TemplateExtensionCreatorUID", kU, {.uids = kK}},
    {0x0050001B, "ContainerComponentID", kX, {}},
    {0x00500020, "DeviceDescription", kX, {.device = kK}},
    {0x00500021, "LongDeviceDescription", kX, {.descriptors = kC}},
    {0x00620021, "TrackingUID", kU, {.uids = kK}},
    {0x00700001, "GraphicAnnotationSequence", kD, {}},
    {0x00700084, "ContentCreatorName", kZD, {}},
    {0x00700086, "ContentCreatorIdentificationCodeSequence", kX, {}},
    {0x0070031A, "FiducialUID", kU, {.uids = kK}},
    {0x00701101, "PresentationDisplayCollectionUID", kU, {.uids = kK}},
    {0x00701102, "PresentationSequenceCollectionUID", kU, {.uids = kK}},
    {0x00880140, "StorageMediaFileSetUID", kU, {.uids = kK}},
    {0x00880200, "IconImageSequence", kX, {}},
    {0x00880904, "TopicTitle", kX, {}},
    {0x00880906, "TopicSubject", kX, {}},
    {0x00880910, "TopicAuthor", kX, {}},
    {0x00880912, "TopicKeywords", kX, {}},
    {0x04000100, "DigitalSignatureUID", kU, {}},
    {0x04000402, "ReferencedDigitalSignatureSequence", kX, {}},
    {0x04000403, "ReferencedSOPInstanceMACSequence", kX, {}},
    {0x04000404, "MAC", kX, {}},
    {0x04000550, "ModifiedAttributesSequence", kX, {}},
    {0x04000551, "NonconformingModifiedAttributesSequence", kX, {}},
    {0x04000552, "NonconformingDataElementValue", kX, {}},
    {0x04000561, "OriginalAttributesSequence", kX, {}},
    {0x04000600, "InstanceOriginStatus", kX, {}},
    {0x20300020, "TextString", kX, {}},
    {0x22000002, "LabelText", kXZ, {.descriptors = kC}},
    {0x22000005, "BarcodeValue", kXZ, {}},
    {0x30060002, "StructureSetLabel", kD, {.descriptors = kC}},
    {0x30060004, "StructureSetName", kX, {.descriptors = kC}},
    {0x30060006, "StructureSetDescription", kX, {.descriptors = kC}},
    {0x30060008, "StructureSetDate", kZ, {.full_dates = kK, .modified_dates = kC}},
    {0x30060009, "StructureSetTime", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x30060024, "ReferencedFrameOfReferenceUID", kU, {.uids = kK}},
    {0x30060026, "ROIName", kZ, {.descriptors = kC}},
    {0x30060028, "ROIDescription", kX, {.descriptors = kC}},
    {0x30060038, "ROIGenerationDescription", kX, {.descriptors = kC}},
    {0x30060085, "ROIObservationLabel", kX, {.descriptors = kC}},
    {0x30060088, "ROIObservationDescription", kX, {.descriptors = kC}},
    {0x300600A6, "ROIInterpreter", kZ, {}},
    {0x300600C2, "RelatedFrameOfReferenceUID", kU, {.uids = kK}},
    {0x30080054, "FirstTreatmentDate", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x30080056, "MostRecentTreatmentDate", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x30080105, "SourceSerialNumber", kXZ, {.device = kK}},
    {0x30080250, "TreatmentDate", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x30080251, "TreatmentTime", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x300A0002, "RTPlanLabel", kD, {.descriptors = kC}},
    {0x300A0003, "RTPlanName", kX, {.descriptors = kC}},
    {0x300A0004, "RTPlanDescription", kX, {.descriptors = kC}},
    {0x300A0006, "RTPlanDate", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x300A0007, "RTPlanTime", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x300A000E, "PrescriptionDescription", kX, {.descriptors = kC}},
    {0x300A0013, "DoseReferenceUID", kU, {.uids = kK}},
    {0x300A0016, "DoseReferenceDescription", kX, {.descriptors = kC}},
    {0x300A0072, "FractionGroupDescription", kX, {.descriptors = kC}},
    {0x300A0083, "ReferencedDoseReferenceUID", kU, {.uids = kK}},
    {0x300A00B2, "TreatmentMachineName", kX, {.device = kK}},
    {0x300A00C3, "BeamDescription", kX, {.descriptors = kC}},
    {0x300A00DD, "BolusDescription", kX, {.descriptors = kC}},
    {0x300A0196, "FixationDeviceDescription", kX, {.descriptors = kC}},
    {0x300A01A6, "ShieldingDeviceDescription", kX, {.descriptors = kC}},
    {0x300A01B2, "SetupTechniqueDescription", kX, {.descriptors = kC}},
    {0x300A0216, "SourceManufacturer", kX, {.device = kK}},
    {0x300A02EB, "CompensatorDescription", kX, {.descriptors = kC}},
    {0x300A0608, "TreatmentPositionGroupLabel", kD, {.descriptors = kC}},
    {0x300A0609, "TreatmentPositionGroupUID", kU, {.uids = kK}},
    {0x300A0611, "RTAccessoryHolderSlotID", kZ, {}},
    {0x300A0615, "RTAccessoryDeviceSlotID", kZ, {}},
    {0x300A0619, "RadiationDoseIdentificationLabel", kD, {.descriptors = kC}},
    {0x300A0623, "RadiationDoseInVivoMeasurementLabel", kD, {.descriptors = kC}},
    {0x300A062A, "RTToleranceSetLabel", kD, {.descriptors = kC}},
    {0x300A0650, "PatientSetupUID", kU, {.uids = kK}},
    {0x300A0676, "EquipmentFrameOfReferenceDescription", kX, {.descriptors = kC}},
    {0x300A067C, "RadiationGenerationModeLabel", kD, {.descriptors = kC}},
    {0x300A067D, "RadiationGenerationModeDescription", kZ, {.descriptors = kC}},
    {0x300A0700, "TreatmentSessionUID", kU, {.uids = kK}},
    {0x300A0734, "TreatmentToleranceViolationDescription", kD, {.descriptors = kC}},
    {0x300A0736, "TreatmentToleranceViolationDateTime", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x300A073A, "RecordedRTControlPointDateTime", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x300A0741, "InterlockDateTime", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x300A0742, "InterlockDescription", kD, {.descriptors = kC}},
    {0x300A0760, "OverrideDateTime", kD, {.full_dates = kK, .modified_dates = kC}},
    {0x300A0783, "InterlockOriginDescription", kD, {.descriptors = kC}},
    {0x300C0113, "ReasonForOmissionDescription", kX, {.descriptors = kC}},
    {0x300E0008, "ReviewerName", kXZ, {}},
    {0x30100006, "ConceptualVolumeUID", kU, {.uids = kK}},
    {0x3010000B, "ReferencedConceptualVolumeUID", kU, {.uids = kK}},
    {0x3010000F, "ConceptualVolumeCombinationDescription", kZ, {.descriptors = kC}},
    {0x30100013, "ConstituentConceptualVolumeUID", kU, {.uids = kK}},
    {0x30100015, "SourceConceptualVolumeUID", kU, {.uids = kK}},
    {0x30100017, "ConceptualVolumeDescription", kZ, {.descriptors = kC}},
    {0x3010001B, "DeviceAlternateIdentifier", kZ, {}},
    {0x3010002D, "DeviceLabel", kD, {.device = kK}},
    {0x30100031, "ReferencedFiducialsUID", kU, {.uids = kK}},
    {0x30100033, "UserContentLabel", kD, {.descriptors = kC}},
    {0x30100034, "UserContentLongLabel", kD, {.descriptors = kC}},
    {0x30100035, "EntityLabel", kD, {.descriptors = kC}},
    {0x30100036, "EntityName", kX, {.descriptors = kC}},
    {0x30100037, "EntityDescription", kX, {.descriptors = kC}},
    {0x30100038, "EntityLongLabel", kD, {.descriptors = kC}},
    {0x3010003B, "RTTreatmentPhaseUID", kU, {.uids = kK}},
    {0x30100043, "ManufacturerDeviceIdentifier", kZ, {.device = kK}},
    {0x3010004C, "IntendedPhaseStartDate", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x3010004D, "IntendedPhaseEndDate", kXD, {.full_dates = kK, .modified_dates = kC}},
    {0x30100054, "RTPrescriptionLabel", kD, {.descriptors = kC}},
    {0x30100056, "RTTreatmentApproachLabel", kXD, {.descriptors = kC}},
    {0x3010005A, "RTPhysicianIntentNarrative", kZ, {.descriptors = kC}},
    {0x3010005C, "ReasonForSuperseding", kZ, {.descriptors = kC}},
    {0x30100061, "PriorTreatmentDoseDescription", kX, {.descriptors = kC}},
    {0x3010006E, "DosimetricObjectiveUID", kU, {.uids = kK}},
    {0x3010006F, "ReferencedDosimetricObjectiveUID", kU, {.uids = kK}},
    {0x30100077, "TreatmentSite", kD, {.descriptors = kC}},
    {0x3010007A, "TreatmentTechniqueNotes", kZ, {.descriptors = kC}},
    {0x3010007B, "PrescriptionNotes", kZ, {.descriptors = kC}},
    {0x3010007F, "FractionationNotes", kZ, {.descriptors = kC}},
    {0x30100081, "PrescriptionNotesSequence", kZ, {.descriptors = kC}},
    {0x40000010, "Arbitrary", kX, {}},
    {0x40004000, "TextComments", kX, {}},
    {0x40080042, "ResultsIDIssuer", kX, {}},
    {0x40080102, "InterpretationRecorder", kX, {}},
    {0x4008010A, "InterpretationTranscriber", kX, {}},
    {0x4008010B, "InterpretationText", kX, {.descriptors = kC}},
    {0x4008010C, "InterpretationAuthor", kX, {}},
    {0x40080111, "InterpretationApproverSequence", kX, {}},
    {0x40080114, "PhysicianApprovingInterpretation", kX, {}},
    {0x40080115, "InterpretationDiagnosisDescription", kX, {.descriptors = kC}},
    {0x40080118, "ResultsDistributionListSequence", kX, {}},
    {0x40080119, "DistributionName", kX, {}},
    {0x4008011A, "DistributionAddress", kX, {}},
    {0x40080202, "InterpretationIDIssuer", kX, {}},
    {0x40080300, "Impressions", kX, {.descriptors = kC}},
    {0x40084000, "ResultsComments", kX, {.descriptors = kC}},
    {0xFFFAFFFA, "DigitalSignaturesSequence", kX, {}},
    {0xFFFCFFFC, "DataSetTrailingPadding", kX, {}},
};
// clang-format on

constexpr bool SortedByTag() {
  for (size_t i = 1; i < std::size(kRows); ++i) {
    if (kRows[i - 1].tag >= kRows[i].tag) return false;
  }
  return true;
}
static_assert(SortedByTag(), "FindProfileRow searches the rows by bisection");

}  // namespace

std::span<const ProfileRow> ProfileRows() { return kRows; }

const ProfileRow* FindProfileRow(uint32_t tag) {
  const auto* it = std::lower_bound(std::begin(kRows), std::end(kRows), tag,
                                    [](const ProfileRow& row, uint32_t t) { return row.tag < t; });
  return it != std::end(kRows) && it->tag == tag ? it : nullptr;
}

Action EffectiveAction(const ProfileRow& row, const DeidConfig& config) {
  Action action = row.basic;
  const auto apply = [&action](bool on, Action option) {
    if (on && option != Action::kNone) action = option;
  };
  const OptionActions& o = row.options;
  apply(config.clean_descriptors, o.descriptors);
  apply(config.retain_patient_characteristics, o.patient);
  apply(config.retain_device_identity, o.device);
  apply(config.retain_uids, o.uids);
  apply(config.temporal == TemporalRetention::kFullDates, o.full_dates);
  apply(config.temporal == TemporalRetention::kModifiedDates, o.modified_dates);
  return action;
}

namespace {

std::optional<std::chrono::year_month_day> ParseDate(std::string_view date) {
  if (date.size() != 8 ||
      !std::all_of(date.begin(), date.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  const auto number = [&](size_t at, size_t n) {
    int value = 0;
    for (size_t i = at; i < at + n; ++i) value = value * 10 + (date[i] - '0');
    return value;
  };
  const std::chrono::year_month_day ymd{std::chrono::year{number(0, 4)},
                                        std::chrono::month{static_cast<unsigned>(number(4, 2))},
                                        std::chrono::day{static_cast<unsigned>(number(6, 2))}};
  if (!ymd.ok()) return std::nullopt;
  return ymd;
}

std::string FormatDate(const std::chrono::year_month_day& ymd) {
  char text[16];
  std::snprintf(text, sizeof text, "%04d%02u%02u", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()));
  return text;
}

std::optional<std::string> ShiftOne(std::string_view value, bool date_time, int days) {
  if (value.empty()) return std::string();
  if (value.size() < 8 || (!date_time && value.size() != 8)) return std::nullopt;
  const auto ymd = ParseDate(value.substr(0, 8));
  if (!ymd) return std::nullopt;
  const std::chrono::year_month_day shifted{std::chrono::sys_days{*ymd} - std::chrono::days{days}};
  if (static_cast<int>(shifted.year()) < 1) return std::nullopt;
  return FormatDate(shifted) + std::string(value.substr(8));
}

}  // namespace

std::optional<std::string> ShiftDates(std::string_view value, bool date_time, int days) {
  std::string out;
  while (true) {
    const size_t end = value.find('\\');
    const auto one = ShiftOne(value.substr(0, end), date_time, days);
    if (!one) return std::nullopt;
    out += *one;
    if (end == std::string_view::npos) return out;
    out += '\\';
    value.remove_prefix(end + 1);
  }
}

std::string BirthDateByRule(std::string_view date, const DeidConfig& config) {
  const auto ymd = ParseDate(date);
  if (!ymd || config.birth_date == BirthDateRule::kRemove) return {};
  if (config.birth_date == BirthDateRule::kYear) {
    return FormatDate({ymd->year(), std::chrono::January, std::chrono::day{1}});
  }
  const unsigned last = static_cast<unsigned>(std::chrono::year_month_day_last{
      ymd->year(),
      std::chrono::month_day_last{ymd->month()}}.day());
  const unsigned wanted = static_cast<unsigned>(std::clamp(config.birth_day, 1, 31));
  return FormatDate({ymd->year(), ymd->month(), std::chrono::day{std::min(wanted, last)}});
}

}  // namespace medvfs::store::deid_profile
